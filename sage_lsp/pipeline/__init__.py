"""Pipeline building: the plan schema, blueprints, the builder, and pipeline-file features."""
