# The standalone service's image (docker-compose.yml: web, worker, beat use this one image).
#   docker build -t shop-recs .                                      PyPI's default PyTorch
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t shop-recs .
#                                                                    CPU-only, no CUDA libraries
FROM python:3.11-slim
ARG TORCH_INDEX_URL=""
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.txt .
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
      pip install --index-url "$TORCH_INDEX_URL" $(grep -E '^(torch|torchvision)==' requirements.txt); \
    fi \
 && pip install -r requirements.txt
COPY . .
# The service runs as an unprivileged user; its data (media, models, static) lives under /data.
RUN useradd --create-home --uid 10001 app \
 && mkdir -p /data \
 && chown app:app /data
USER app
ENV SHOP_RECS_DATA_DIR=/data
EXPOSE 8000
CMD ["gunicorn", "shop_recs.wsgi", "--bind", "0.0.0.0:8000"]
