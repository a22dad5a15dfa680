"""The MailSage CDK app: one thin stack composed of capability constructs."""
