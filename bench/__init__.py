"""MailSage benchmarks: `python -m bench`. See bench/README.md and bench/RESULTS.md."""
