"""Partition definitions: one `dac` partition per Deploy Anywhere Capsule."""

import dagster as dg

dac_partitions = dg.DynamicPartitionsDefinition(name="dac")
