"""The `kubevision` command: the typer app, each command registered from the module of its group."""

from __future__ import annotations

import sys

import typer

from kubevision.cli import local, migrate, resources, schema, servers, train, upload, usage

app = typer.Typer(
    help="KubeVision: train and serve image classifiers behind the Azure Custom Vision API, "
    "on Kubernetes or on one machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain output: errors are one "Error: ..." line that scripts and logs keep intact
)
local_app = typer.Typer(
    help="Run the platform's services (S3, MLflow, Triton) on this machine, without Kubernetes.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(local_app, name="local")

# In the order `kubevision --help` lists them.
for command in (schema.crds, schema.validate, train.train, resources.apply, upload.upload, resources.get,
                resources.describe, resources.logs, resources.delete, usage.usage, migrate.migrate):
    app.command()(command)
app.command("operator")(servers.run_operator)
app.command("gateway")(servers.run_gateway)
for command in (local.up, local.demo, local.keys, local.down, local.controller, local.status):
    local_app.command()(command)


def main() -> None:
    """The console script. As with kubectl, a wrong command line exits 1, like every other error."""
    from typer.exceptions import TyperException

    from kubevision.local.process import ServiceError

    try:
        code = app(standalone_mode=False)
    except TyperException as error:  # typer's usage errors, each shown as typer shows it
        error.show()
        code = 1
    except typer.Abort:
        typer.echo("Aborted!", err=True)
        code = 1
    except ServiceError as error:  # the local platform is not up, or a service of it failed: the message says
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)  # what to do
        code = 1
    sys.exit(code if isinstance(code, int) else 0)
