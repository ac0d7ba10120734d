"""The Textual TUI that bare `demtui` opens: Compose, Watch and History.

``demtui.tui.app`` pulls in Textual (never torch); import it lazily, as the CLI does.
"""
