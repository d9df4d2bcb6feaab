"""Peak memory of the current process, for the benchmark children.

getrusage's ru_maxrss survives execve on Linux, so a child started by a large parent would report
the parent's peak; VmHWM (the high-water mark of this process image) does not."""


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
