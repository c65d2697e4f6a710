FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY relay_site relay_site
COPY realtime realtime
COPY realtime_simulator realtime_simulator
COPY relay_loadtools relay_loadtools
COPY templates templates
COPY manage.py ./
RUN pip install -c constraints.txt . && useradd --system relay
USER relay
EXPOSE 8080
# Reached directly by default; behind a proxy add --proxy-headers and RELAY_TRUSTED_PROXIES
# (docker-compose.yml does).
CMD ["python", "manage.py", "serve", "--host", "0.0.0.0", "--port", "8080", "--no-migrate"]
