"""MailSage: the shared package (domain, ports, adapters, local runtime) shipped as a Lambda layer."""
