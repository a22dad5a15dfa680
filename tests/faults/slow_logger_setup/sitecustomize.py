"""Put on a server's PYTHONPATH by test_startup.py: widens (does not create) the window of
Powertools' Logger set-up race by pausing before a new Logger configures its service's shared
logging.Logger. Threads that create a service's first Logger at the same time then collide on
nearly every start instead of once in tens."""

import time

from aws_lambda_powertools.logging import logger as _powertools_logger

_init_logger = _powertools_logger.Logger._init_logger


def _paused_init_logger(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    time.sleep(0.05)
    return _init_logger(self, *args, **kwargs)


_powertools_logger.Logger._init_logger = _paused_init_logger  # type: ignore[method-assign]
