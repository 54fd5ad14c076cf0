# One image for the web server, the bridge and the one-shot setup
# (docker-compose.yml builds it once and runs all three from it).

# Build stage: a virtualenv with the runtime packages only: the "# Runtime"
# section of requirements.txt, every version (theirs and their dependencies')
# pinned by the whole file. pip refuses extras in a constraints file, hence
# the sed that drops them there.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY requirements.txt .
RUN sed -n '/^# Runtime/,/^$/p' requirements.txt > runtime.txt \
 && sed 's/\[[^]]*\]//' requirements.txt > constraints.txt \
 && python -m venv /venv \
 && /venv/bin/pip install -r runtime.txt -c constraints.txt

# Runtime stage: the virtualenv and the code, owned by root and run by an
# unprivileged user that can write nothing in /app.
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PATH=/venv/bin:$PATH
RUN groupadd --system --gid 10001 chat \
 && useradd --system --uid 10001 --gid chat --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin chat
COPY --from=build /venv /venv
WORKDIR /app
COPY . .
# The admin's and the API docs' static files, served by whitenoise.
RUN DJANGO_DEBUG=1 python manage.py collectstatic --noinput
USER chat
EXPOSE 8000
# The web server's readiness (the database, Redis and Kafka answer); the
# bridge's service in docker-compose.yml probes its own port instead.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
CMD ["python", "manage.py", "serve", "--host", "0.0.0.0", "--port", "8000"]
