"""The ``smaformer`` console script: one module per subcommand."""
