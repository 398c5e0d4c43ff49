import unittest

from support import Body
import _oxwsgi
from _oxwsgi.wsgi_input import Input


class InputTest(unittest.TestCase):
    def test_read_everything(self):
        self.assertEqual(Input(Body(b'abc', b'def')).read(), b'abcdef')
        self.assertEqual(Input(Body(b'abc', b'def')).read(None), b'abcdef')
        self.assertEqual(Input(Body(b'abc')).read(-5), b'abc')

    def test_read_sizes_never_past_the_end(self):
        inp = Input(Body(b'abcdef'))
        self.assertEqual(inp.read(0), b'')
        self.assertEqual(inp.read(2), b'ab')
        self.assertEqual(inp.read(3), b'cde')
        self.assertEqual(inp.read(10), b'f')
        self.assertEqual(inp.read(10), b'')
        self.assertEqual(inp.read(), b'')

    def test_readline_then_read_uses_the_buffer_first(self):
        body = Body(b'one\ntwo\nthree')
        inp = Input(body)
        self.assertEqual(inp.readline(), b'one\n')
        self.assertEqual(inp.read(2), b'tw')
        self.assertEqual(inp.read(), b'o\nthree')

    def test_readline_returns_an_arrived_line_without_waiting(self):
        body = Body(b'first\nsec', b'ond\n', b'last')
        inp = Input(body)
        self.assertEqual(inp.readline(), b'first\n')
        self.assertEqual(body.calls, [(8192, True)])
        self.assertEqual(inp.readline(), b'second\n')
        self.assertEqual(inp.readline(), b'last')
        self.assertEqual(inp.readline(), b'')
        self.assertTrue(all(partial for _size, partial in body.calls))

    def test_readline_size(self):
        inp = Input(Body(b'abcdef\ngh\n'))
        self.assertEqual(inp.readline(0), b'')
        self.assertEqual(inp.readline(3), b'abc')
        self.assertEqual(inp.readline(10), b'def\n')
        self.assertEqual(inp.readline(None), b'gh\n')
        self.assertEqual(inp.readline(5), b'')

    def test_readline_size_over_chunks(self):
        inp = Input(Body(b'ab', b'cd', b'ef\n'))
        self.assertEqual(inp.readline(3), b'abc')
        self.assertEqual(inp.readline(), b'def\n')

    def test_readlines_and_hint(self):
        self.assertEqual(Input(Body(b'a\nb\n', b'c')).readlines(), [b'a\n', b'b\n', b'c'])
        self.assertEqual(Input(Body(b'aa\nbb\ncc\n')).readlines(4), [b'aa\n', b'bb\n'])
        self.assertEqual(Input(Body(b'aa\nbb\n')).readlines(None), [b'aa\n', b'bb\n'])
        self.assertEqual(Input(Body()).readlines(), [])

    def test_iteration(self):
        inp = Input(Body(b'x\ny', b'\nz'))
        self.assertIs(iter(inp), inp)
        self.assertEqual(list(inp), [b'x\n', b'y\n', b'z'])
        self.assertRaises(StopIteration, next, inp)
        inp.close()

    def test_outside_its_request(self):
        self.assertRaises(OSError, Input(None).read)

    def test_named_as_applications_see_it(self):
        self.assertEqual('%s.%s' % (Input.__module__, Input.__qualname__), 'mod_wsgi.Input')
        self.assertIs(_oxwsgi.Input, Input)


if __name__ == '__main__':
    unittest.main()
