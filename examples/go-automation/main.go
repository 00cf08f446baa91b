// The YAML, Python and TypeScript examples' experiment and run, in Go, with the generated Go SDK, run by
// the Automation API: an inline program, which needs no language host (none for Go is served where this
// was built), through the same CLI and engine as `pulumi up` in a project folder.
//
//	go run . STACK up|preview|no-change|refresh|destroy|outputs [key=value ...]
//
// Each key=value is set in the stack's config first (`experimentName`, `batchSize`, `extraLoss`: an
// appended point), kept in ./stack-settings for the runs after it. The state backend and passphrase are the usual PULUMI_BACKEND_URL and
// PULUMI_CONFIG_PASSPHRASE; the server is `mlflow-runs:trackingUri` or MLFLOW_TRACKING_URI; the engine
// runs the resources on the plugin pulumi-resource-mlflow-runs, which it fetches from the release host the
// SDK names (its pluginDownloadURL) unless one is on PATH or installed.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optrefresh"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"

	mlflow "github.com/pulumi-mlflow-runs/pulumi-mlflow-runs/sdk/go/mlflowruns"
)

const (
	project     = "mlflow-runs-go"
	settingsDir = "stack-settings" // under the folder it runs in
)

func program(ctx *pulumi.Context) error {
	cfg := config.New(ctx, "")
	name := cfg.Get("experimentName")
	if name == "" {
		name = "go-native-" + ctx.Stack()
	}
	batchSize := cfg.Get("batchSize")
	if batchSize == "" {
		batchSize = "32"
	}
	experiment, err := mlflow.NewExperiment(ctx, "evaluations", &mlflow.ExperimentArgs{
		Name: pulumi.String(name),
		Tags: pulumi.StringMap{"owner": pulumi.String("ml-platform")},
	})
	if err != nil {
		return err
	}
	points := mlflow.MetricPointArray{
		mlflow.MetricPointArgs{Key: pulumi.String("loss"), Value: pulumi.Float64(0.92), Step: pulumi.Int(0)},
		mlflow.MetricPointArgs{Key: pulumi.String("loss"), Value: pulumi.Float64(0.61), Step: pulumi.Int(1)},
		mlflow.MetricPointArgs{Key: pulumi.String("loss"), Value: pulumi.Float64(0.44), Step: pulumi.Int(2)},
		mlflow.MetricPointArgs{Key: pulumi.String("accuracy"), Value: pulumi.Float64(0.924), Step: pulumi.Int(2)},
	}
	if extra, ok := cfg.TryFloat64("extraLoss"); ok == nil {
		points = append(points, mlflow.MetricPointArgs{
			Key: pulumi.String("loss"), Value: pulumi.Float64(extra), Step: pulumi.Int(3),
		})
	}
	run, err := mlflow.NewExperimentRun(ctx, "bertSst2", &mlflow.ExperimentRunArgs{
		ExperimentId: experiment.ExperimentId,
		RunName:      pulumi.String("bert-sst2"),
		Status:       pulumi.String("FINISHED"),
		StartTime:    pulumi.Int(1767225600000), // 2026-01-01T00:00:00Z
		EndTime:      pulumi.Int(1767229200000),
		Params: pulumi.StringMap{
			"model":      pulumi.String("bert-base-uncased"),
			"batch_size": pulumi.String(batchSize),
			"api_key":    pulumi.ToSecret(pulumi.String("s3cr3t-param-value")).(pulumi.StringOutput),
		},
		Tags:        pulumi.StringMap{"reviewed_by": pulumi.String("alice")},
		Description: pulumi.String("BERT base on SST-2, evaluated on the validation split."),
		Metrics:     points,
		DatasetInputs: mlflow.DatasetInputTypeArray{
			mlflow.DatasetInputTypeArgs{
				Dataset: mlflow.DatasetArgs{
					Name: pulumi.String("sst2"), Digest: pulumi.String("9a1b2c3d"),
					SourceType: pulumi.String("hf"), Source: pulumi.String("glue/sst2"),
				},
				Tags: pulumi.StringMap{"mlflow.data.context": pulumi.String("eval")},
			},
		},
		Artifacts: pulumi.AssetOrArchiveMap{
			"report.md": pulumi.NewStringAsset("# bert-sst2\n\naccuracy 0.924 on the SST-2 validation split.\n"),
		},
	})
	if err != nil {
		return err
	}
	ctx.Export("experimentId", experiment.ExperimentId)
	ctx.Export("runId", run.RunId)
	ctx.Export("latestMetrics", run.LatestMetrics)
	return nil
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: go run . STACK up|preview|no-change|refresh|destroy|outputs [key=value ...]")
		os.Exit(2)
	}
	if err := drive(context.Background(), os.Args[1], os.Args[2], os.Args[3:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func drive(ctx context.Context, stackName, command string, settings []string) error {
	// The stack's settings (Pulumi.yaml, Pulumi.<stack>.yaml with its config) in a folder that stays, as in
	// a project folder: without one the Automation API keeps them in a new temporary folder each time, and a
	// setting made for one run would be gone at the next.
	if err := os.MkdirAll(settingsDir, 0o755); err != nil {
		return err
	}
	stack, err := auto.UpsertStackInlineSource(ctx, stackName, project, program, auto.WorkDir(settingsDir))
	if err != nil {
		return err
	}
	for _, setting := range settings {
		key, value, ok := strings.Cut(setting, "=")
		if !ok {
			return fmt.Errorf("%q: config settings are key=value", setting)
		}
		if err := stack.SetConfig(ctx, key, auto.ConfigValue{Value: value}); err != nil {
			return err
		}
	}
	out := os.Stdout
	switch command {
	case "preview":
		_, err = stack.Preview(ctx, optpreview.Diff(), optpreview.ProgressStreams(out))
	case "no-change": // `pulumi preview --expect-no-changes`: fails if the program and the server differ
		_, err = stack.Preview(ctx, optpreview.Diff(), optpreview.ExpectNoChanges(), optpreview.ProgressStreams(out))
	case "up":
		_, err = stack.Up(ctx, optup.ProgressStreams(out))
	case "refresh":
		_, err = stack.Refresh(ctx, optrefresh.Diff(), optrefresh.ProgressStreams(out))
	case "destroy":
		_, err = stack.Destroy(ctx, optdestroy.ProgressStreams(out))
	case "outputs":
		var outputs auto.OutputMap
		if outputs, err = stack.Outputs(ctx); err == nil {
			plain := map[string]any{}
			for k, v := range outputs {
				plain[k] = v.Value
			}
			err = json.NewEncoder(out).Encode(plain)
		}
	default:
		return fmt.Errorf("unknown command %q", command)
	}
	return err
}
