import hashlib
import os
import sys
import tempfile
import unittest

import support  # noqa: F401
from _oxwsgi import scripts


class ScriptTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.path = os.path.join(self.dir.name, 'App.wsgi')
        self.addCleanup(scripts.configure, True)
        self.addCleanup(lambda: sys.modules.pop(scripts.module_name(self.path), None))

    def write(self, text):
        with open(self.path, 'w') as f:
            f.write(text)

    def test_module_name_is_mod_wsgis(self):
        digest = hashlib.md5(self.path.encode()).hexdigest()
        self.assertEqual(scripts.module_name(self.path), '_mod_wsgi_' + digest)
        scripts.configure(False)
        self.assertEqual(scripts.module_name(self.path),
                         '_mod_wsgi_' + hashlib.md5(self.path.lower().encode()).hexdigest())

    def test_loaded_once_and_again_when_the_mtime_changes(self):
        self.write('runs = 1\n')
        first = scripts.load_script(self.path, 100, True)
        self.assertEqual(first.runs, 1)
        self.assertEqual((first.__file__, first.__mtime__), (self.path, 100))
        self.assertEqual(first.__spec__.origin, self.path)
        self.assertIs(sys.modules[first.__name__], first)
        self.assertIs(scripts.load_script(self.path, 100, True), first)
        # Without reload, a changed mtime keeps the loaded module.
        self.assertIs(scripts.load_script(self.path, 200, False), first)
        self.write('runs = 2\n')
        second = scripts.load_script(self.path, 200, True)
        self.assertIsNot(second, first)
        self.assertEqual(second.runs, 2)
        self.assertIs(sys.modules[second.__name__], second)
        # reload_required() asked for it: loaded again although the mtime is the same.
        third = scripts.load_script(self.path, 200, True, force=True)
        self.assertIsNot(third, second)

    def test_a_failing_script_leaves_the_previous_module(self):
        self.write('ok = True\n')
        good = scripts.load_script(self.path, 1, True)
        self.write('raise ValueError("broken")\n')
        try:
            scripts.load_script(self.path, 2, True)
        except ValueError as e:
            text = scripts.format_exception(e)
        else:
            self.fail('no ValueError')
        self.assertIs(sys.modules[good.__name__], good)
        self.assertIn('ValueError: broken', text)
        self.assertIn(self.path, text)

    def test_a_failing_first_load_leaves_nothing(self):
        self.write('1/0\n')
        self.assertRaises(ZeroDivisionError, scripts.load_script, self.path, 1, True)
        self.assertNotIn(scripts.module_name(self.path), sys.modules)


class InterpContextTest(unittest.TestCase):
    def test_named_as_mod_wsgi_6_names_it(self):
        from _oxwsgi.scripts import interp_context
        self.assertEqual(interp_context('', ''), 'main interpreter in embedded mode')
        self.assertEqual(interp_context('', 'h|/x'), "sub-interpreter 'h|/x' in embedded mode")
        self.assertEqual(interp_context('g', ''), "main interpreter of daemon process 'g'")
        self.assertEqual(interp_context('g', 'h|'), "sub-interpreter 'h|' of daemon process 'g'")



class ExceptionHeaderTest(unittest.TestCase):
    def setUp(self):
        scripts.configure(True, 'g', 'h|/x')
        self.addCleanup(scripts.configure, True)

    def test_mod_wsgi_6s_lines(self):
        self.assertEqual(
            scripts.exception_header(RuntimeError('x'), '/s.wsgi'),
            "WSGI0174: [script /s.wsgi] RuntimeError exception raised processing WSGI script "
            "'/s.wsgi' for sub-interpreter 'h|/x' of daemon process 'g'.")
        self.assertEqual(
            scripts.exception_header(SystemExit(3), '/s.wsgi'),
            "WSGI0175: [script /s.wsgi] SystemExit exception raised by WSGI script '/s.wsgi' "
            "for sub-interpreter 'h|/x' of daemon process 'g'; ignored.")

    def test_classes_named_as_c_names_them(self):
        from _oxwsgi.module import RequestTimeout

        class Own(Exception):
            pass
        self.assertIn('] mod_wsgi.RequestTimeout exception raised processing',
                      scripts.exception_header(RequestTimeout(), '/s'))
        self.assertIn('] %s.ExceptionHeaderTest.test_classes_named_as_c_names_them.<locals>.Own '
                      'exception raised processing' % __name__,
                      scripts.exception_header(Own(), '/s'))


if __name__ == '__main__':
    unittest.main()
