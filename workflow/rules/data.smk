# Staging: datasets and backbones are fetched/converted on the login node (localrules), so compute
# nodes without internet only ever read local files.


localrules:
    prepare_data,
    probe_backbone,


rule prepare_data:
    output:
        summary=f"{R}/data/{{dataset}}.{{backbone}}.json",
    log:
        "logs/prepare_data/{dataset}.{backbone}.log",
    params:
        extra=data_args,
    threads: 1
    conda:
        "../envs/fastexit.yaml"
    shell:
        "python -m fastexit_bench data prepare {wildcards.dataset} --backbone {wildcards.backbone} "
        "{params.extra} --out {output.summary} > {log} 2>&1"


rule probe_backbone:
    output:
        summary=f"{R}/backbones/{{backbone}}.json",
    log:
        "logs/probe_backbone/{backbone}.log",
    params:
        resources=config["resources"],
    threads: 1
    conda:
        "../envs/fastexit.yaml"
    shell:
        "python -m fastexit_bench backbone show {wildcards.backbone} --resources {params.resources} "
        "--out {output.summary} > {log} 2>&1"
