"""Long renders stop promptly on Ctrl-C (KeyboardInterrupt) and leave the process usable."""
import _thread
import signal
import threading
import time

import numpy as np
import pytest

import synthdof


def _scene(n=1200):
    rng = np.random.default_rng(0)
    img = rng.random((n, n, 3), dtype=np.float32)
    coc = np.linspace(-60, 60, n, dtype=np.float32)[:, None].repeat(n, 1)
    return img, coc


def test_render_raises_keyboard_interrupt_quickly():
    img, coc = _scene()
    fired = []

    def ctrl_c():  # what Ctrl-C does to the main thread
        fired.append(time.process_time())
        _thread.interrupt_main()

    timer = threading.Timer(0.2, ctrl_c)
    # Python's own Ctrl-C handler, even where the runner was started with SIGINT ignored (a
    # shell's background job): interrupt_main() does nothing then
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            timer.start()
            for _ in range(100):  # renders until the interrupt lands in one of them
                synthdof.render(img, coc=coc)
    finally:
        signal.signal(signal.SIGINT, previous)
    raised = time.process_time()
    timer.join()
    # the core checks between depth slices; one slice of this frame takes well under a second of
    # the process's CPU time (CPU time, not wall time: on a busy machine a second of wall time
    # may hold a tenth of that)
    assert raised - fired[0] < 2.0
    # and the library still works afterwards
    out = synthdof.render(img[:64, :64], coc=coc[:64, :64])
    assert np.isfinite(out).all()
