import gc
import io
import sys
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
        self.assertNotIn(s.buffer, streams.pending)

    def test_a_partial_line_waits_for_its_end(self):
        s = LogStream('ctx', level=6)
        s.write('par')
        s.write('tial')
        self.assertEqual(native.lines, [])
        self.assertIn(s.buffer, streams.pending)
        s.write(' line\nnext')
        self.assertEqual(native.lines, [('ctx', 6, 'partial line')])
        self.assertIn(s.buffer, streams.pending)

    def test_flush_pending_logs_what_is_left_at_the_end_of_a_request(self):
        a, b = LogStream('a'), LogStream('b')
        a.write('left in a')
        b.write('done\n')
        streams.flush_pending()
        self.assertEqual(native.lines, [('b', 3, 'done'), ('a', 3, 'left in a')])
        self.assertEqual(streams.pending, set())
        streams.flush_pending()
        self.assertEqual(len(native.lines), 2)

    def test_an_ended_requests_wsgi_errors_serves_the_next_request(self):
        streams._idle.clear()
        s = streams.errors_stream('a')
        s.write('one\n')
        streams.give_back(s)
        s.write('after\n')  # (the native side gives back only what nothing refers to)
        again = streams.errors_stream('b')
        self.assertIs(again, s)
        again.write('two\n')
        self.assertEqual(native.lines, [('a', 3, 'one'), (None, 3, 'after'), ('b', 3, 'two')])
        self.assertIsNot(streams.errors_stream('c'), s, 'one request at a time')

    def test_a_closed_detached_reconfigured_or_unfinished_stream_is_not_reused(self):
        def spoilt(spoil):
            streams._idle.clear()
            s = streams.errors_stream('ctx')
            spoil(s)
            streams.give_back(s)
            return streams._idle == []
        self.assertTrue(spoilt(lambda s: s.close()))
        self.assertTrue(spoilt(lambda s: s.detach()))
        self.assertTrue(spoilt(lambda s: s.reconfigure(encoding='latin-1')))
        self.assertTrue(spoilt(lambda s: s.reconfigure(errors='strict')))
        self.assertTrue(spoilt(lambda s: s.reconfigure(line_buffering=False)))
        self.assertTrue(spoilt(lambda s: s.reconfigure(write_through=False)))
        self.assertTrue(spoilt(lambda s: s.write('partial')))
        self.assertFalse(spoilt(lambda s: s.write('whole\n')))
        streams._idle.clear()

    def test_flush_and_close_keep_a_partial_line_for_the_end_of_the_request(self):
        s = LogStream()
        s.write('x')
        s.flush()
        self.assertEqual(native.lines, [])
        s.write('y')
        s.close()
        self.assertRaises(ValueError, s.write, 'z')
        self.assertEqual(native.lines, [])
        streams.flush_pending()
        self.assertEqual(native.lines, [(None, 3, 'xy')])

    def test_a_dropped_stream_keeps_its_partial_line_and_warns_of_nothing(self):
        s = LogStream('ctx')
        s.write('left')
        raw = s.buffer
        unraisable = []
        hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
        try:
            del s
            gc.collect()
        finally:
            sys.unraisablehook = hook
        self.assertEqual(unraisable, [])
        self.assertIsNone(raw._dealloc_warn(None))
        self.assertIn(raw, streams.pending)
        streams.flush_pending()
        self.assertEqual(native.lines, [('ctx', 3, 'left')])

    def test_wsgi_errors_is_a_text_io_wrapper_like_mod_wsgis(self):
        s = LogStream()
        self.assertIs(type(s), io.TextIOWrapper)
        self.assertEqual((s.name, s.encoding, s.errors, s.line_buffering, s.write_through),
                         ('<wsgi.errors>', 'utf-8', 'replace', True, True))
        self.assertRaises(TypeError, s.write, b'bytes')
        s.writelines(['a\n', 'b', '\n'])
        self.assertEqual(native.texts(), ['a', 'b'])
        self.assertRaises(OSError, s.fileno)
        self.assertEqual((s.closed, s.isatty(), s.readable(), s.seekable(), s.writable()),
                         (False, False, False, False, True))
        self.assertEqual('%s.%s' % (type(s.buffer).__module__, type(s.buffer).__qualname__), 'mod_wsgi.Log')

    def test_buffer_takes_bytes_like_objects(self):
        # mod_wsgi's tests/wsgi/logging: bytes, bytearray and memoryview, write and writelines.
        s = LogStream('ctx')
        b = s.buffer  # (the wrapper closes it when it goes)
        self.assertEqual(b.write(b'bytes\n'), 6)
        self.assertEqual(b.write(bytearray(b'bytearray\n')), 10)
        self.assertEqual(b.write(memoryview(b'memoryview\n')), 11)
        b.writelines([b'wl-bytes\n', bytearray(b'wl-bytearray\n'), memoryview(b'wl-memoryview\n')])
        b.write('caf\xe9\n'.encode('utf-8') + b'\xff\n')
        self.assertEqual(native.texts(), ['bytes', 'bytearray', 'memoryview', 'wl-bytes', 'wl-bytearray',
                                          'wl-memoryview', 'caf\xe9', '\ufffd'])

    def test_stdout_stream(self):
        out = log_stream('<stdout>')
        self.assertIsInstance(out, io.TextIOWrapper)
        print('hello', 'world', file=out)
        out.write('no newline')
        out.flush()  # a partial line stays until the end of the request
        self.assertEqual(native.lines, [(None, 3, 'hello world')])
        streams.flush_pending()
        self.assertEqual(native.texts(), ['hello world', 'no newline'])
        self.assertEqual(out.name, '<stdout>')
        self.assertRaises(OSError, out.fileno)

    def test_restricted(self):
        r = streams.Restricted('sys.stdout')
        self.assertEqual('%s.%s' % (type(r).__module__, type(r).__qualname__), 'mod_wsgi.Restricted')
        with self.assertRaisesRegex(OSError, 'sys.stdout access restricted by mod_wsgi'):
            r.write('x')
        with self.assertRaises(OSError):
            r.flush


if __name__ == '__main__':
    unittest.main()
