# One image for every service: Airflow (api-server, scheduler, dag-processor,
# triggerer), the Spark master and workers, and the jobs they run.
#   docker compose build        (needs network access to PyPI and Maven Central)
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    APP_HOME=/opt/interest-migration \
    JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64

RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless maven procps curl tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 50000 --gid 0 app \
 && mkdir -p /lake /opt/airflow /mlflow-artifacts \
 && chown app:0 /lake /opt/airflow /mlflow-artifacts

WORKDIR ${APP_HOME}
COPY requirements.txt .
COPY conf/requirements.lock conf/requirements.lock
# Every dependency at the version the suite ran on (conf/requirements.lock, as make install), the
# deployment's auth manager (FAB) and PostgreSQL driver among them. No secret is built into the image:
# docker-compose.yml passes them at run time.
RUN pip install -r conf/requirements.lock

# The Delta Spark connector, exactly as `make install` resolves it: the versions live in
# conf/jars/pom.xml alone, and scripts/install_jars.sh copies them into ./jars with mvn.
COPY conf/jars/pom.xml conf/jars/pom.xml
COPY scripts/install_jars.sh scripts/install_jars.sh
RUN bash scripts/install_jars.sh jars \
 && rm -rf /root/.m2 \
 && ln -s "$(python -c 'import pyspark, os; print(os.path.dirname(pyspark.__file__))')" /opt/spark

COPY --chown=app:0 . .
# The project itself (pyproject.toml), editable as make install does: the `interest-migration` command.
RUN pip install --no-deps --no-build-isolation -e . && chown -R app:0 interest_migration.egg-info
# The Spark driver's class-data-sharing archive, built by this image's own JVM (scripts/class_archive.py):
# every stage's driver starts from it.
RUN python scripts/class_archive.py jars/spark-driver.jsa
ENV PYTHONPATH=${APP_HOME} \
    SPARK_HOME=/opt/spark \
    PYSPARK_PYTHON=/usr/local/bin/python \
    IM_LAKE=/lake \
    IM_SPARK_JARS_DIR=${APP_HOME}/jars \
    AIRFLOW__CORE__DAGS_FOLDER=${APP_HOME}/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=${APP_HOME}/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False

USER app
ENTRYPOINT ["/usr/bin/tini", "--"]
