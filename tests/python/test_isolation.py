"""os.environ isolation and WSGIRestrictSignal: both change the whole process, so each test
runs in a Python of its own."""

import unittest

from support import run_isolated


class EnvironIsolationTest(unittest.TestCase):
    def test_an_interpreters_own_environment(self):
        out = run_isolated('''
import ctypes, os
from _oxwsgi.environ_isolation import isolate_environ
assert 'subprocess' not in sys.modules
os.environ['REAL'] = 'before'
isolate_environ({'A': '1', 'PATH': '/usr/bin:/bin'})
import subprocess
assert dict(os.environ) == {'A': '1', 'PATH': '/usr/bin:/bin'}, dict(os.environ)
os.environ['B'] = '2'
os.environ.setdefault('C', '3')
del os.environ['A']
os.putenv('D', '4')
libc = ctypes.CDLL(None)
libc.getenv.restype = ctypes.c_char_p
# The real C environment is never written.
assert libc.getenv(b'B') is None and libc.getenv(b'REAL') == b'before'
child = subprocess.check_output(['/usr/bin/env']).decode().split()
assert sorted(child) == ['B=2', 'C=3', 'D=4', 'PATH=/usr/bin:/bin'], child
assert os.system('test "$B" = 2') == 0
assert os.system('exit 3') == 3 << 8
os.unsetenv('B')
assert 'B=2' not in subprocess.check_output(['/usr/bin/env']).decode().split()
for bad in ('', 'X=Y'):
    try:
        os.putenv(bad, 'v')
    except ValueError:
        pass
    else:
        raise AssertionError('putenv accepted %r' % bad)
print('ok')
''')
        self.assertEqual(out.strip(), 'ok')


class RestrictSignalsTest(unittest.TestCase):
    def test_signal_registration_is_ignored_and_logged(self):
        out = run_isolated('''
import io, signal, sys
from _oxwsgi.signals import restrict_signals
before = signal.getsignal(signal.SIGUSR1)
restrict_signals('site')
sys.stderr = io.StringIO()
assert signal.signal(signal.SIGUSR1, lambda *a: None) is before
message, sys.stderr = sys.stderr.getvalue(), sys.__stderr__
assert signal.getsignal(signal.SIGUSR1) is before
assert "Callback registration for signal %d ignored: application group 'site'" % signal.SIGUSR1 in message, message
assert 'called from <string> line ' in message, message
print('ok')
''')
        self.assertEqual(out.strip(), 'ok')


if __name__ == '__main__':
    unittest.main()
