import threading
import unittest

import support  # noqa: F401
from _oxwsgi import module


class ThreadStackTest(unittest.TestCase):
    def test_innermost_call_first_as_mod_wsgi_6_logs_it(self):
        started, release = threading.Event(), threading.Event()

        def inner():
            started.set()
            release.wait(5)

        def outer():
            inner()

        t = threading.Thread(target=outer)
        t.start()
        started.wait(5)
        try:
            lines = module.thread_stack(t.ident).split('\n')
        finally:
            release.set()
            t.join()
        self.assertTrue(lines[0].startswith('Thread %d executing file "' % t.ident), lines[0])
        self.assertTrue(lines[0].endswith(', in wait'), lines[0])
        names = [line.rsplit(' in ', 1)[1] for line in lines]
        self.assertLess(names.index('inner,'), names.index('outer,'))
        self.assertTrue(all(line.startswith('called from file "') for line in lines[1:]))
        self.assertTrue(lines[-1].endswith('.') and all(line.endswith(',') for line in lines[1:-1]))

    def test_a_thread_without_python_code_has_no_stack(self):
        self.assertEqual(module.thread_stack(1), '')


if __name__ == '__main__':
    unittest.main()
