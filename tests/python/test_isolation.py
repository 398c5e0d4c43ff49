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

    def test_posix_spawn_without_an_environment_gets_the_interpreters(self):
        # subprocess spawns through os.posix_spawn(..., env=None) from Python 3.13; it is
        # forced here so that every Python takes that path.
        out = run_isolated('''
import os
from _oxwsgi.environ_isolation import isolate_environ
os.environ['REAL'] = 'before'
isolate_environ({'A': '1'})
os.environ['B'] = '2'
import subprocess
subprocess._USE_POSIX_SPAWN = True
subprocess._HAVE_POSIX_SPAWN_CLOSEFROM = hasattr(os, 'POSIX_SPAWN_CLOSEFROM')
spawned = []
real = os.posix_spawn
def recording(path, argv, env, **kwargs):
    spawned.append(env)
    return real(path, argv, env, **kwargs)
os.posix_spawn = recording
child = subprocess.check_output(['/usr/bin/env'], close_fds=subprocess._HAVE_POSIX_SPAWN_CLOSEFROM)
# 3.11 and 3.12 pass os.environ, 3.13+ env=None (the C environment).
assert len(spawned) == 1, spawned
assert sorted(child.decode().split()) == ['A=1', 'B=2'], child
os.posix_spawn = real
for spawn, path in ((os.posix_spawn, '/usr/bin/env'), (os.posix_spawnp, 'env')):
    r, w = os.pipe()
    pid = spawn(path, ['env'], None, file_actions=[(os.POSIX_SPAWN_DUP2, w, 1)])
    os.close(w)
    with os.fdopen(r, 'rb') as f:
        child = f.read()
    assert os.waitpid(pid, 0)[1] == 0
    assert sorted(child.decode().split()) == ['A=1', 'B=2'], (spawn, child)
# An explicit environment is passed as it is.
r, w = os.pipe()
pid = os.posix_spawn('/usr/bin/env', ['env'], {'X': 'y'}, file_actions=[(os.POSIX_SPAWN_DUP2, w, 1)])
os.close(w)
with os.fdopen(r, 'rb') as f:
    assert f.read() == b'X=y\\n'
os.waitpid(pid, 0)
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
