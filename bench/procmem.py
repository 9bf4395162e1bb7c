"""Memory and time of work inside a benchmark's child process, from /proc/self/status.

Peak is VmHWM, not ru_maxrss: at exec Linux folds the peak of the replaced address space into
ru_maxrss, which a child started by subprocess (vfork + exec) shares with its parent, and
clear_refs does not lower it, so a child's ru_maxrss is never below its parent's peak at the
spawn. VmHWM is the child's own, and writing 5 to /proc/self/clear_refs resets it.
"""

import gc
import time


def status_mib(field: str) -> float:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in MiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mib() -> float:
    """This process's resident set now."""
    return status_mib("VmRSS")


def peak_mib() -> float:
    """This process's peak resident set since the last reset_peak."""
    return status_mib("VmHWM")


def reset_peak() -> bool:
    """Lowers the peak (VmHWM) to the RSS now, so that the next reading is the peak of the work
    in between; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def timed(work, *args):
    """(seconds, peak MiB, RSS MiB before, result) of work(*args), earlier garbage collected."""
    gc.collect()
    before = rss_mib()
    reset_peak()
    began = time.perf_counter()
    result = work(*args)
    return time.perf_counter() - began, peak_mib(), before, result
