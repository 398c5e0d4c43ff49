import json
import os
import unittest

from support import native
from _oxwsgi import gc_telemetry, metrics_api


class MetricsTest(unittest.TestCase):
    def setUp(self):
        native.stats = None
        native.scoreboard = None
        metrics_api._recording = None
        native.recorded_io = None
        self.addCleanup(setattr, metrics_api, '_recording', None)
        self.addCleanup(setattr, native, 'stats', None)

    def test_process_metrics(self):
        self.assertIsNone(metrics_api.process_metrics())
        native.stats = (1_000_000, 7, 2_500_000, 4, 1)
        m = metrics_api.process_metrics()
        self.assertEqual((m['pid'], m['restart_time'], m['request_count'], m['request_busy_time']),
                         (os.getpid(), 1.0, 7, 2.5))
        self.assertEqual((m['request_threads'], m['active_requests'], m['threads']), (4, 1, []))
        self.assertGreater(m['memory_max_rss'], 0)

    def test_request_metrics_over_intervals(self):
        self.assertIsNone(metrics_api.request_metrics())
        native.stats = (0, 10, 1_000_000, 4, 0)
        metrics_api.start_recording_metrics()
        native.stats = (0, 15, 3_000_000, 4, 2)
        m = metrics_api.request_metrics()
        self.assertEqual((m['request_count'], m['request_busy_time']), (5, 2.0))
        self.assertEqual((m['request_threads_maximum'], m['request_threads_active']), (4, 2))
        self.assertGreater(m['request_throughput'], 0)
        self.assertEqual(metrics_api.request_metrics()['request_count'], 0)

    def test_request_metrics_have_mod_wsgi_6s_io_and_gil_keys(self):
        native.stats = (0, 0, 0, 4, 0)
        metrics_api.start_recording_metrics()
        native.stats = (0, 2, 0, 4, 0)
        buckets = tuple(1 if i == 3 else 0 for i in range(65))
        native.recorded_io = (5, 100, 3, 2048, 4,
                              ((3000, 1000, 2000, buckets), (0, 0, 0, buckets), (500, 100, 400, buckets)))
        m = metrics_api.request_metrics()
        self.assertEqual((m['gil_wait_count'], m['input_bytes'], m['input_reads'], m['output_bytes'],
                          m['output_writes']), (5, 100, 3, 2048, 4))
        self.assertEqual((m['gil_wait_time'], m['input_read_time'], m['output_write_time']),
                         (0.0015, 0.0, 0.00025))
        self.assertEqual((m['gil_wait_time_min_us'], m['gil_wait_time_max_us']), (1000, 2000))
        for name in ('gil_wait_time', 'input_read_time', 'output_write_time'):
            self.assertEqual(m[name + '_buckets'], list(buckets))
        # The next interval starts empty.
        native.stats = (0, 2, 0, 4, 0)
        m = metrics_api.request_metrics()
        self.assertEqual((m['request_count'], m['gil_wait_count'], m['gil_wait_time']), (0, 0, 0.0))
        self.assertEqual((m['gil_wait_time_min_us'], len(m['output_write_time_buckets'])), (None, 65))

    def test_none_under_telemetry(self):
        native.stats = (0, 1, 0, 1, 0)
        metrics_api.start_recording_metrics()
        self.addCleanup(setattr, metrics_api, '_telemetry', metrics_api._telemetry)
        metrics_api._telemetry = True
        self.assertIsNone(metrics_api.process_metrics())
        self.assertIsNone(metrics_api.request_metrics())

    def test_server_metrics(self):
        self.assertIsNone(metrics_api.server_metrics())
        native.scoreboard = json.dumps({'processes': [{'pid': 1}]})
        self.assertEqual(metrics_api.server_metrics(), {'processes': [{'pid': 1}]})

    def test_gc_passes_reach_the_reporter_with_22_values(self):
        native.gc_passes.clear()
        callback = gc_telemetry.reporter('group')
        callback('start', {'generation': 1})
        callback('stop', {'generation': 1, 'collected': 5, 'uncollectable': 0})
        [(group, values)] = native.gc_passes
        self.assertEqual(group, 'group')
        self.assertEqual(len(values), 22)  # what src/python/telemetry_gc.rs accepts
        self.assertEqual(values[2:5], (1, 5, 0))


if __name__ == '__main__':
    unittest.main()
