import contextlib
import io
import os
import unittest

import support  # noqa: F401
from _oxwsgi import events


class EventTest(unittest.TestCase):
    def setUp(self):
        self.heard = []
        for registry in (events.event_callbacks, events.signal_callbacks, events.active_requests):
            registry.clear()
            self.addCleanup(registry.clear)
        self.addCleanup(events.configure, False)
        events.configure(False)

    def listen(self, name, **kwargs):
        self.heard.append((name, kwargs))

    def test_request_events_in_order(self):
        events.subscribe_events(self.listen)
        environ = {'mod_wsgi.request_id': 'r1', 'mod_wsgi.request_start': '1500000',
                   'mod_wsgi.queue_start': '1600000', 'mod_wsgi.thread_id': 3}
        sent = []

        def start_response(status, headers, exc_info=None):
            sent.append((status, headers, exc_info))
            return 'write'

        data, published = events.request_started(environ, 'app', start_response, 10.0)
        self.assertIs(events.active_requests['r1'], data)
        self.assertEqual(published('200 OK', [('A', 'b')]), 'write')
        self.assertEqual(sent, [('200 OK', [('A', 'b')], None)])
        events.request_finished(environ, data, 10.0, {'output_length': 5}, None)
        self.assertEqual([name for name, _ in self.heard], ['request_started', 'response_started', 'request_finished'])
        started, response, finished = (kw for _, kw in self.heard)
        self.assertEqual((started['request_id'], started['request_start'], started['application_object']),
                         ('r1', 1.5, 'app'))
        self.assertIs(started['request_environ'], environ)
        self.assertEqual(response['response_status'], '200 OK')
        self.assertEqual((finished['request_start'], finished['queue_start'], finished['thread_id']), (1.5, 1.6, 3))
        self.assertEqual((finished['output_length'], finished['server_pid']), (5, os.getpid()))
        self.assertNotIn('daemon_start', finished)
        self.assertNotIn('r1', events.active_requests)

    def test_request_exception_and_daemon_stamps(self):
        events.configure(True)
        events.subscribe_events(self.listen)
        error = ValueError('x')
        events.request_finished({}, {}, 0.0, {}, error)
        self.assertEqual([name for name, _ in self.heard], ['request_exception', 'request_finished'])
        self.assertEqual(self.heard[0][1]['exception_info'][:2], (ValueError, error))
        self.assertNotIn('server_pid', self.heard[1][1])

    def test_shutdown_subscribers_hear_only_process_stopping(self):
        events.subscribe_shutdown(self.listen)
        events.request_finished({}, {}, 0.0, {}, None)
        events.process_stopping('maximum requests')
        self.assertEqual(self.heard, [('process_stopping', {'shutdown_reason': 'maximum requests'})])

    def test_a_failing_callback_is_reported_and_the_others_still_called(self):
        def broken(name, **kwargs):
            raise RuntimeError('callback broke')
        events.subscribe_events(broken)
        events.subscribe_events(self.listen)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            events.process_stopping('stop')
        self.assertIn('RuntimeError: callback broke', err.getvalue())
        self.assertEqual(self.heard, [('process_stopping', {'shutdown_reason': 'stop'})])

    def test_signals_in_a_daemon(self):
        events.configure(True)
        listen = self.listen
        self.assertIs(events.subscribe_signals(listen), listen)
        events.subscribe_events(lambda name, **kw: self.heard.append(('events', name)))
        events.process_signal('SIGHUP', 1)
        self.assertEqual(self.heard, [('process_signal', {'signame': 'SIGHUP', 'signum': 1})])

    def test_signals_are_inert_in_embedded_mode(self):
        err = io.StringIO()
        listen = self.listen
        with contextlib.redirect_stderr(err):
            self.assertIs(events.subscribe_signals(listen), listen)
        self.assertIn('subscribe_signals() has no effect in embedded mode', err.getvalue())
        self.assertIn('test_events.py', err.getvalue())
        events.process_signal('SIGHUP', 1)
        self.assertEqual(self.heard, [])


if __name__ == '__main__':
    unittest.main()
