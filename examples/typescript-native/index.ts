// The YAML and Python examples' experiment and run, in TypeScript, with the generated Node.js SDK.
// Property names are the schema's camelCase; the preview names each changed path (`metrics[4]`,
// `artifacts["report.md"]`).
import * as pulumi from "@pulumi/pulumi";
import * as mlflow from "@pulumi-mlflow-runs/mlflow-runs";

const config = new pulumi.Config();

const experiment = new mlflow.Experiment("evaluations", {
    name: config.get("experimentName") ?? `typescript-native-${pulumi.getStack()}`,
    tags: { owner: "ml-platform" },
});

const run = new mlflow.ExperimentRun("bertSst2", {
    experimentId: experiment.experimentId,
    runName: "bert-sst2",
    status: "FINISHED",
    startTime: 1767225600000, // 2026-01-01T00:00:00Z
    endTime: 1767229200000,
    params: { model: "bert-base-uncased", batch_size: "32" },
    tags: { reviewed_by: "alice" },
    description: "BERT base on SST-2, evaluated on the validation split.",
    metrics: [
        { key: "loss", value: 0.92, step: 0 },
        { key: "loss", value: 0.61, step: 1 },
        { key: "loss", value: 0.44, step: 2 },
        { key: "accuracy", value: 0.924, step: 2 },
    ],
    datasetInputs: [
        {
            dataset: { name: "sst2", digest: "9a1b2c3d", sourceType: "hf", source: "glue/sst2" },
            tags: { "mlflow.data.context": "eval" },
        },
    ],
    artifacts: {
        "report.md": new pulumi.asset.StringAsset("# bert-sst2\n\naccuracy 0.924 on the SST-2 validation split.\n"),
    },
});

export const experimentId = experiment.experimentId;
export const runId = run.runId;
export const artifactUri = run.artifactUri;
export const latestMetrics = run.latestMetrics;
