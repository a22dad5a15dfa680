"""MailSage benchmarks (issue 6): `python -m bench`. See bench/README.md and bench/RESULTS.md."""
