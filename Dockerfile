# Image for docker-compose.yml (web, worker, beat).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
EXPOSE 8000
CMD ["gunicorn", "shop_recs.wsgi", "--bind", "0.0.0.0:8000"]
