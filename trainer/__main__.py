import argparse
import sys
from pathlib import Path

from kubevision.trainer.entrypoint import run

parser = argparse.ArgumentParser(prog="python -m kubevision.trainer", description="Train one iteration.")
parser.add_argument("--request", type=Path, help="TrainingRequest JSON (default: $KUBEVISION_TRAINING_REQUEST)")
sys.exit(run(parser.parse_args().request))
