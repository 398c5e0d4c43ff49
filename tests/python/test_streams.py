import io
import unittest

from support import native
from _oxwsgi import streams
from _oxwsgi.streams import LogStream, log_stream


class StreamTest(unittest.TestCase):
    def setUp(self):
        native.lines.clear()
        streams.flush_pending()
        native.lines.clear()

    def test_complete_lines_are_logged_at_once(self):
        s = LogStream('ctx')
        self.assertEqual(s.write('one\ntwo\n'), 8)
        self.assertEqual(native.lines, [('ctx', streams.LOG_ERR, 'one'), ('ctx', streams.LOG_ERR, 'two')])
        self.assertNotIn(s, streams.pending)

    def test_a_partial_line_waits_for_its_end(self):
        s = LogStream('ctx', level=6)
        s.write('par')
        s.write('tial')
        self.assertEqual(native.lines, [])
        self.assertIn(s, streams.pending)
        s.write(' line\nnext')
        self.assertEqual(native.texts(), ['partial line'])
        self.assertIn(s, streams.pending)

    def test_flush_pending_logs_what_is_left_at_the_end_of_a_request(self):
        a, b = LogStream('a'), LogStream('b')
        a.write('left in a')
        b.write('done\n')
        streams.flush_pending()
        self.assertEqual(native.lines, [('b', 3, 'done'), ('a', 3, 'left in a')])
        self.assertEqual(streams.pending, set())
        streams.flush_pending()
        self.assertEqual(len(native.lines), 2)

    def test_flush_and_close(self):
        s = LogStream()
        s.write('x')
        s.flush()
        s.write('y')
        s.close()
        self.assertEqual(native.lines, [(None, 3, 'x'), (None, 3, 'y')])
        s.flush()
        self.assertEqual(len(native.lines), 2)

    def test_log_stream_api(self):
        s = LogStream()
        self.assertRaises(TypeError, s.write, b'bytes')
        s.writelines(['a\n', 'b', '\n'])
        self.assertEqual(native.texts(), ['a', 'b'])
        self.assertRaises(io.UnsupportedOperation, s.fileno)
        self.assertEqual((s.closed, s.isatty(), s.readable(), s.seekable(), s.writable()),
                         (False, False, False, False, True))
        self.assertEqual((s.name, s.encoding, s.errors), ('<wsgi.errors>', 'utf-8', 'backslashreplace'))
        self.assertEqual('%s.%s' % (LogStream.__module__, LogStream.__qualname__), '_oxwsgi.LogStream')

    def test_stdout_stream(self):
        out = log_stream('<stdout>')
        self.assertIsInstance(out, io.TextIOWrapper)
        print('hello', 'world', file=out)
        out.write('no newline')
        out.flush()  # a partial line stays until the end of the request
        self.assertEqual(native.lines, [(None, 3, 'hello world')])
        streams.flush_pending()
        self.assertEqual(native.texts(), ['hello world', 'no newline'])
        out.buffer.write('caf\xe9\n'.encode('utf-8') + b'\xff\n')
        self.assertEqual(native.texts()[2:], ['caf\xe9', '\ufffd'])
        self.assertEqual(out.name, '<stdout>')
        self.assertRaises(OSError, out.fileno)

    def test_restricted(self):
        r = streams._Restricted('sys.stdout')
        with self.assertRaisesRegex(IOError, 'sys.stdout access restricted by mod_wsgi'):
            r.write('x')
        with self.assertRaises(IOError):
            r.flush


if __name__ == '__main__':
    unittest.main()
