# crossrank serve on CPU. Build and run (from the repository root):
#
#   docker build -t crossrank .
#   docker run --rm -p 8080:8080 -e CROSSRANK_API_KEY=change-me crossrank
#   docker run --rm -p 8080:8080 -v /path/to/model:/model -e CROSSRANK_MODEL=/model crossrank --dtype bfloat16
#
# The image holds the shipped default model (in the package), so it serves offline. Every `serve` flag has a
# CROSSRANK_* environment variable; arguments after the image name are passed to `crossrank serve`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 CROSSRANK_HOST=0.0.0.0 CROSSRANK_PORT=8080

WORKDIR /app
# The CPU wheel of torch first (from PyTorch's CPU index), so the package's torch requirement is met without
# pulling the multi-GB CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[serve]" && useradd --create-home crossrank
USER crossrank

EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"
ENTRYPOINT ["crossrank", "serve"]
