"""WSGIRestrictSignal On (embedded mode): signals belong to Apache, so signal.signal() only
logs where it was called from and changes nothing."""

import os
import sys


def restrict_signals(application_group):
    import signal
    real_signal = signal.signal

    def guarded(signum, handler):
        caller = sys._getframe(1)
        sys.stderr.write(
            "mod_wsgi (pid=%d): Callback registration for signal %s ignored: application group %r, "
            "called from %s line %d. Signals belong to Apache in embedded mode (WSGIRestrictSignal On).\n"
            % (os.getpid(), signum, application_group, caller.f_code.co_filename, caller.f_lineno))
        sys.stderr.flush()
        return signal.getsignal(signum)

    guarded.__wrapped__ = real_signal
    signal.signal = guarded
