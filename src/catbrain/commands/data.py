"""catbrain-data: write a synthetic world's train, val and test splits to CSV files, the format data=csv reads.

    catbrain-data out=cat_csv                                   # the default experiment's data
    catbrain-data out=weather_csv experiment=weather_3pm data.n_train=100000
    catbrain-data out=cat_csv overwrite=true                    # replace the files an earlier run wrote

Each split becomes ``<out>/<split>.csv`` with the features and the targets by name (class targets
as class names), exactly the rows a training run with the same overrides would draw.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from catbrain.commands import common
from catbrain.config import compose
from catbrain.errors import UsageError
from catbrain.run.files import atomic_path

PROG = "catbrain-data"


def write_splits(datamodule, out: Path) -> dict[str, Path]:
    """Write every split of a world DataModule to ``out/<split>.csv``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, data in datamodule.splits.items():
        columns = {name: data["features"][:, i].tolist() for i, name in enumerate(datamodule.feature_names)}
        for target in datamodule.targets:
            values = data[target]
            if values.is_floating_point():
                columns[target] = values.tolist()
            else:
                columns[target] = [datamodule.class_names[int(v)] for v in values.tolist()]
        path = out / f"{split}.csv"
        with atomic_path(path) as temporary, open(temporary, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(columns)
            writer.writerows(zip(*columns.values()))
        written[split] = path
    return written


def main(argv: Sequence[str] | None = None) -> None:
    argv = common.command_line(argv, __doc__.strip())
    if argv is None:
        return
    with common.errors_as_one_line(PROG):
        outs = [a.split("=", 1)[1] for a in argv if a.startswith("out=")]
        if not outs or not outs[-1]:
            raise UsageError("out=DIR is required: the folder for train.csv, val.csv and test.csv")
        overwrites = [a.split("=", 1)[1] for a in argv if a.startswith("overwrite=")]
        overwrite = common.overwrite_flag(overwrites[-1] if overwrites else None)
        overrides = [a for a in argv if not a.startswith(("out=", "overwrite="))]
        from hydra.errors import HydraException
        from hydra.utils import instantiate

        try:
            cfg = compose("train", overrides)
        except HydraException as error:
            raise UsageError(str(error).split("Config search path")[0]) from None
        if cfg.data._target_ != "catbrain.data.WorldDataModule":
            raise UsageError(f"data={cfg.data._target_} is not a synthetic world; only worlds can be written")
        splits = ["train", "val", "test"] + (["shift"] if cfg.data.get("shift") else [])
        common.refuse_existing([Path(outs[-1]) / f"{split}.csv" for split in splits], "out", overwrite)
        datamodule = instantiate(cfg.data)
        datamodule.setup("fit")
        for split, path in write_splits(datamodule, Path(outs[-1])).items():
            print(f"{split}: {len(datamodule.splits[split]['features'])} rows -> {path}")


if __name__ == "__main__":
    main()
