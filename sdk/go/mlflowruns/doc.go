// MLflow experiment runs declared as code, on Databricks or an open-source MLflow server.
package mlflowruns
