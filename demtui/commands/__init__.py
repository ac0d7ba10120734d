"""The CLI's commands, one module per group; demtui.cli wires them into one typer app."""
