"""``python -m modelport.cli`` runs the command line."""

from modelport.cli.main import main

main()
