"""The floor: a FastAPI endpoint that reads the body and answers at once, on the same stack."""

from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()


@app.post("/predict")
async def predict(request: Request) -> Response:
    await request.body()
    return Response(b'{"prediction":0}', media_type="application/json")


@app.get("/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}
