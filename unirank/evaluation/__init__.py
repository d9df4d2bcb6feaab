"""`unirank evaluate`'s machinery over the shared metrics (`unirank.metrics`): reading a data set
with a model, the report files and the printed summary, the reliability diagram."""
