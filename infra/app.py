"""The CDK app is not built yet (issue 3). Fail clearly rather than synthesize nothing."""

import sys

sys.exit("MailSage's CDK app is not built yet (issue 3): use `make run` for the embedded runtime.")
