from pulumi_mlflow_runs.native.plugin import main

main()
