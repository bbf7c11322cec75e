"""GLUE tasks (DeeBERT Table 1, PABEE). Test labels are hidden, so papers report the validation split.

Local layouts, tried per split in the order listed: the GLUE TSVs of ``download_glue_data.py``
(``<TASK>/{train,dev}.tsv``), HF ``save_to_disk`` folders, and the labelled 9k/1k subsets of
MNLI/QQP/QNLI train that ``../shared/data`` carries where the full train split is absent.
"""

from collections.abc import Mapping

from fastexit_bench.data.sources import Column, HubSource, SavedDataset, TableFiles
from fastexit_bench.data.spec import DatasetSpec, register_dataset

TSV_SPLITS = {"train": "train.tsv", "validation": "dev.tsv"}
ARROW_SPLITS = {"train": "train", "validation": "validation"}
SUBSET_NOTE = "subset of GLUE train (8,999 train / 1,000 dev, PowerfulPromptFT), not the full split"
PAIR = {"text_a": "text_a", "text_b": "text_b", "label": "label"}


def glue_tsv(task: str, columns: Mapping[str, Column], files=TSV_SPLITS, header=True, note="") -> TableFiles:
    """The GLUE TSV folder of ``task`` (e.g. ``SST-2``) under the usual parent folders."""
    roots = (task, f"glue_data/{task}", f"glue/{task}", f"glue_F0restL1n/{task}")
    return TableFiles(roots=roots, files=files, fmt="tsv", header=header, columns=columns, note=note)


def glue_arrow(config: str, columns: Mapping[str, Column], folders=ARROW_SPLITS) -> SavedDataset:
    """A ``save_to_disk`` copy of ``nyu-mll/glue``'s ``config``."""
    roots = (f"glue_arrow/{config}", f"glue_hf_arrow_EPT/{config}")
    return SavedDataset(roots=roots, folders=folders, columns=columns)


def glue_subset(task: str, files: Mapping[str, str]) -> TableFiles:
    """The labelled JSON subsets of GLUE train in ``../shared/data``."""
    roots = (f"glue_subsets/{task}", f"glue_subsets_PowerfulPromptFT/{task}")
    return TableFiles(roots=roots, files=files, fmt="json", columns=PAIR, note=SUBSET_NOTE)


def glue_hub(config: str, columns: Mapping[str, Column], splits=ARROW_SPLITS) -> HubSource:
    return HubSource("nyu-mll/glue", config, splits=splits, columns=columns)


SINGLE = {"text_a": "sentence", "label": "label"}
SENTENCE_PAIR = {"text_a": "sentence1", "text_b": "sentence2", "label": "label"}
NLI_PAIR = {"text_a": "premise", "text_b": "hypothesis", "label": "label"}
QA_PAIR = {"text_a": "question", "text_b": "sentence", "label": "label"}
ENTAILMENT = ("entailment", "not_entailment")
PAPER = "DeeBERT Table 1 (Xin et al., 2020); PABEE Table 1 (Zhou et al., 2020)"


def glue_task(name: str, title: str, labels: tuple[str, ...], metrics: tuple[str, ...], sources: tuple,
              hub: HubSource, **kwargs) -> DatasetSpec:
    """An English GLUE task; pairs when ``hub``'s columns name a ``text_b``."""
    text_fields = ("text_a", "text_b") if "text_b" in hub.columns else ("text_a",)
    task = "regression" if not labels else "classification"
    return DatasetSpec(name=name, title=title, language="en", task=task, label_names=labels, metrics=metrics,
                       text_fields=text_fields, sources=sources, hub=hub, paper=PAPER, **kwargs)


register_dataset(
    glue_task(
        "sst2",
        "SST-2",
        ("negative", "positive"),
        ("accuracy",),
        (glue_tsv("SST-2", SINGLE), glue_arrow("sst2", SINGLE)),
        glue_hub("sst2", SINGLE),
    )
)
register_dataset(
    glue_task(
        "mrpc",
        "MRPC",
        ("not_equivalent", "equivalent"),
        ("f1", "accuracy"),
        (
            glue_arrow("mrpc", SENTENCE_PAIR),
            glue_tsv(
                "MRPC",
                {"text_a": "#1 String", "text_b": "#2 String", "label": "Quality"},
                note="GLUE TSV copy; the ../shared/data one lacks 1 train pair (3,667 of 3,668)",
            ),
        ),
        glue_hub("mrpc", SENTENCE_PAIR),
    )
)
register_dataset(
    glue_task(
        "qnli",
        "QNLI",
        ENTAILMENT,
        ("accuracy",),
        (
            glue_tsv("QNLI", QA_PAIR),
            glue_arrow("qnli", QA_PAIR),
            glue_subset("QNLI", {"train": "train.json"}),
        ),
        glue_hub("qnli", QA_PAIR),
    )
)
register_dataset(
    glue_task(
        "rte",
        "RTE",
        ENTAILMENT,
        ("accuracy",),
        (glue_tsv("RTE", SENTENCE_PAIR), glue_arrow("rte", SENTENCE_PAIR)),
        glue_hub("rte", SENTENCE_PAIR),
    )
)
register_dataset(
    glue_task(
        "qqp",
        "QQP",
        ("not_duplicate", "duplicate"),
        ("f1", "accuracy"),
        (
            glue_tsv("QQP", {"text_a": "question1", "text_b": "question2", "label": "is_duplicate"}),
            glue_arrow("qqp", {"text_a": "question1", "text_b": "question2", "label": "label"}),
            glue_subset("QQP", {"train": "train.json", "validation": "dev.json"}),
        ),
        glue_hub("qqp", {"text_a": "question1", "text_b": "question2", "label": "label"}),
        notes=("Without the official dev set, validation is a 1,000-pair subset of GLUE train.",),
    )
)
register_dataset(
    glue_task(
        "mnli",
        "MNLI",
        ("entailment", "neutral", "contradiction"),
        ("accuracy",),
        (
            glue_tsv(
                "MNLI",
                {"text_a": "sentence1", "text_b": "sentence2", "label": "gold_label"},
                files={
                    "train": "train.tsv",
                    "validation_matched": "dev_matched.tsv",
                    "validation_mismatched": "dev_mismatched.tsv",
                },
            ),
            glue_arrow(
                "mnli",
                NLI_PAIR,
                folders={s: s for s in ("train", "validation_matched", "validation_mismatched")},
            ),
            glue_subset("MNLI", {"train": "train.json"}),
        ),
        glue_hub(
            "mnli", NLI_PAIR, splits={s: s for s in ("train", "validation_matched", "validation_mismatched")}
        ),
        eval_splits=("validation_matched", "validation_mismatched"),
    )
)
register_dataset(
    glue_task(
        "cola",
        "CoLA",
        ("unacceptable", "acceptable"),
        ("matthews",),
        (glue_tsv("CoLA", {"text_a": 3, "label": 1}, header=False), glue_arrow("cola", SINGLE)),
        glue_hub("cola", SINGLE),
    )
)
register_dataset(
    glue_task(
        "stsb",
        "STS-B",
        (),
        ("pearson", "spearman"),
        (
            glue_tsv("STS-B", {"text_a": "sentence1", "text_b": "sentence2", "label": "score"}),
            glue_arrow("stsb", SENTENCE_PAIR),
        ),
        glue_hub("stsb", SENTENCE_PAIR),
    )
)
