"""The command line, the demo and the HTML report: applications built on guardrail."""
