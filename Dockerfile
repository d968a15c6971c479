# One image for every service: Airflow (api-server, scheduler, dag-processor,
# triggerer), the Spark master and workers, and the jobs they run.
#   docker compose build        (needs network access to PyPI and Maven Central)
FROM python:3.11-slim-bookworm

ARG DELTA_VERSION=4.4.1
ARG SCALA_BINARY=2.13
ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    APP_HOME=/opt/interest-migration \
    JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64

RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps curl tini \
 && rm -rf /var/lib/apt/lists/*

WORKDIR ${APP_HOME}
COPY requirements.txt .
# The PostgreSQL driver is for this deployment only (the local run uses SQLite).
RUN pip install -r requirements.txt apache-airflow-providers-postgres==7.1.1

# The Delta Spark connector: Maven is reachable at image build time, so the
# jars go onto Spark's classpath and the lake uses Spark's native Delta
# implementation (IM_LAKE_IMPL=delta-spark). The local default stays delta-rs.
RUN SPARK_HOME="$(python -c 'import pyspark, os; print(os.path.dirname(pyspark.__file__))')" \
 && for artifact in "delta-spark_${SCALA_BINARY}" delta-storage; do \
      curl -fsSL -o "${SPARK_HOME}/jars/${artifact}-${DELTA_VERSION}.jar" \
        "https://repo1.maven.org/maven2/io/delta/${artifact}/${DELTA_VERSION}/${artifact}-${DELTA_VERSION}.jar"; \
    done \
 && mkdir -p "${SPARK_HOME}/conf" \
 && printf '%s\n' \
      'spark.sql.extensions io.delta.sql.DeltaSparkSessionExtension' \
      'spark.sql.catalog.spark_catalog org.apache.spark.sql.delta.catalog.DeltaCatalog' \
      > "${SPARK_HOME}/conf/spark-defaults.conf" \
 && ln -s "${SPARK_HOME}" /opt/spark

COPY . .
ENV PYTHONPATH=${APP_HOME} \
    SPARK_HOME=/opt/spark \
    PYSPARK_PYTHON=/usr/local/bin/python \
    IM_LAKE=/lake \
    IM_LAKE_IMPL=delta-spark \
    AIRFLOW__CORE__DAGS_FOLDER=${APP_HOME}/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False

ENTRYPOINT ["/usr/bin/tini", "--"]
