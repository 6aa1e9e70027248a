"""A process is known by its pid and its create time; the create time must not move when the
clock is set (NTP, a virtual machine resumed), or every live session, supervisor and merge would
suddenly seem gone and its services be stopped."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest

from sage_lsp.processes import create_time, is_alive, is_own_group

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="counts from /proc")


def test_a_process_stays_itself_when_the_clock_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        recorded = create_time(child.pid)
        epoch = psutil.Process(child.pid).create_time()
        # the clock is set 3 s ahead: the boot seems 3 s later, as /proc/stat's btime says
        booted = psutil.boot_time()
        monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: booted + 3.0)
        assert psutil.Process(child.pid).create_time() == pytest.approx(epoch + 3.0)
        assert create_time(child.pid) == recorded
        assert is_alive(child.pid, recorded) and is_own_group(child.pid, recorded)
        assert not is_alive(child.pid, recorded - 1.0)  # another process with that pid
    finally:
        child.kill()
        child.wait()
    assert not is_alive(child.pid, recorded)
    with pytest.raises(psutil.NoSuchProcess):
        create_time(child.pid)


def test_a_create_time_an_older_version_recorded_still_counts() -> None:
    epoch = psutil.Process(os.getpid()).create_time()  # from the epoch, as before
    assert is_alive(os.getpid(), epoch)
    assert not is_alive(os.getpid(), epoch - 5.0)
