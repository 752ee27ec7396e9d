"""`python -m provider.agent --config agent.toml`"""

from provider.agent.main import cli

cli()
