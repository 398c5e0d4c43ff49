"""_oxwsgi.setup(): the one call the native side makes in each interpreter."""

import os
import re
import unittest

from support import ROOT, run_isolated

SETUP = '''
import os, sys
import _oxwsgi
ns = _oxwsgi.setup(process_group=%(group)r, application_group='site', version=(4, 9, 4),
                   threads_per_process=5, maximum_processes=2, case_sensitive=True,
                   restrict_stdin=%(restrict)r, restrict_stdout=%(restrict)r, restrict_signal=False,
                   environ={'ONLY': 'this'}, newrelic_config_file=%(newrelic)r)
def report(*items):
    os.write(1, (' '.join(str(i) for i in items) + '\\n').encode())
'''


def exported_names():
    """The names src/python/bootstrap.rs reads from what setup() returns."""
    with open(os.path.join(ROOT, 'src', 'python', 'bootstrap.rs')) as f:
        source = f.read()
    block = source[source.index('exports! {'):]
    block = block[:block.index('\n}\n')]
    return sorted(re.findall(r'= c"(\w+)",', block))


class SetupTest(unittest.TestCase):
    def run_setup(self, code, group='', restrict=False, newrelic=None):
        return run_isolated(SETUP % {'group': group, 'restrict': restrict, 'newrelic': newrelic} + code)

    def test_returns_what_the_native_side_reads(self):
        names = exported_names()
        self.assertIn('Input', names)
        out = self.run_setup('report(*sorted(vars(ns)))')
        self.assertEqual(out.split(), names)

    def test_the_interpreter_after_setup(self):
        out = self.run_setup('''
import mod_wsgi
report(mod_wsgi.version, mod_wsgi.process_group == '', mod_wsgi.application_group, mod_wsgi.oxwsgi)
report(mod_wsgi.threads_per_process, mod_wsgi.maximum_processes)
report(mod_wsgi.FileWrapper is ns.FileWrapper, mod_wsgi.RequestTimeout is ns.RequestTimeout)
report(mod_wsgi.event_callbacks is ns.event_callbacks, mod_wsgi.RequestTimeout.__module__)
report(sys.argv, dict(os.environ))
print('to the log')
report(native.texts())
''')
        self.assertEqual(out.splitlines(), [
            '(4, 9, 4) True site True',
            '5 2',
            'True True',
            'True mod_wsgi',
            "['mod_wsgi'] {'ONLY': 'this'}",
            "['to the log']",
        ])

    def test_restricted_stdio(self):
        out = self.run_setup('''
for stream in (sys.stdout, sys.stdin):
    try:
        stream.write
    except IOError as e:
        report(e)
sys.stdout = sys.__stdout__  # else Python's exit fails flushing it
''', restrict=True)
        self.assertEqual(out.splitlines(), ['sys.stdout access restricted by mod_wsgi',
                                            'sys.stdin access restricted by mod_wsgi'])

    def test_subscribe_signals_registers_in_a_daemon(self):
        out = self.run_setup('''
import mod_wsgi
mod_wsgi.subscribe_signals(print)
report(len(mod_wsgi.signal_callbacks))
''', group='daemon')
        self.assertEqual(out.strip(), '1')

    def test_a_missing_newrelic_agent_is_logged(self):
        out = self.run_setup('''
import importlib.util
report(importlib.util.find_spec('newrelic') is None)
report(any("Unable to import 'newrelic.agent' module" in t for t in native.texts()))
''', newrelic='/nowhere/newrelic.ini')
        missing, logged = out.split()
        if missing != 'True':
            self.skipTest('newrelic is installed')
        self.assertEqual(logged, 'True')


if __name__ == '__main__':
    unittest.main()
