"""The `kubevision` command: one module a group of commands, over every component."""
