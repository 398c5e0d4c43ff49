"""WSGINewRelicConfigFile (mod_wsgi 4.x): each interpreter starts the New Relic agent."""

import os
import sys


def initialize(config_file, environment):
    """newrelic.agent.initialize(config_file, environment); a failure is logged, never raised.
    Runs after the `mod_wsgi` module is in sys.modules."""
    import traceback
    try:
        import newrelic.agent
    except Exception:
        sys.stderr.write("mod_wsgi (pid=%d): Unable to import 'newrelic.agent' module.\n" % os.getpid())
        traceback.print_exc()
        return
    mod = sys.modules['mod_wsgi']
    sys.stderr.write("mod_wsgi (pid=%d, process=%r, application=%r): Imported 'newrelic.agent'.\n"
                     % (os.getpid(), mod.process_group, mod.application_group))
    try:
        newrelic.agent.initialize(config_file, environment)
    except Exception:
        sys.stderr.write("mod_wsgi (pid=%d): Unable to initialise New Relic agent with config '%s'.\n"
                         % (os.getpid(), config_file))
        traceback.print_exc()
