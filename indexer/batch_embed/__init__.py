"""Batch catalogue embedding on PySpark (``shoprank batch-embed``): full or diff, Parquet out, vector log on demand.

``models``: the served item encoder shipped with the job and opened once per Python worker; ``catalogue``: the
input as a Spark DataFrame with the service's item text and its hash; ``job``: the full and diff runs;
``publish``: the output to the vector log; ``cli``: the commands. Runs on ``local[N]`` or any cluster through
``spark-submit`` (docs/indexing.md, "Batch embedding on Spark"). pyspark is the ``batch`` extra.
"""
