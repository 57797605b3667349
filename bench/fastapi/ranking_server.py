"""The reference implementation of the original /rank endpoint (FastAPI).

This is the post-history example's ranking server as the seed ran it
(`uvicorn ranking_server:app`), kept as the baseline for the Celeriac
ranking server's benchmark (bench/rank/run.sh):

- the challenge's pydantic models validate the request;
- every request reads `my_worker:scheduled:top_named_entities` from Redis
  (as the original did) and takes the first element of each
  `[entity, count]` pair;
- items whose text contains none of the entities (`ne in item.text`) come
  first, the others after, each group in its original order (a stable sort);
- CORS is open, as in the original.

Run: REDIS_CONNECTION_STRING=redis://127.0.0.1:6379 uvicorn ranking_server:app
"""

import json
import os
from datetime import datetime
from typing import Literal, Optional, Union

import redis
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from pydantic import BaseModel, Field, HttpUrl, NonNegativeInt

REDIS_DB = f"{os.getenv('REDIS_CONNECTION_STRING', 'redis://localhost:6379')}/0"
RESULT_KEY = "my_worker:scheduled:top_named_entities"


class TwitterEngagements(BaseModel):
    retweet: NonNegativeInt
    like: NonNegativeInt
    comment: NonNegativeInt
    share: NonNegativeInt


class RedditEngagements(BaseModel):
    upvote: NonNegativeInt
    downvote: NonNegativeInt
    comment: NonNegativeInt
    award: NonNegativeInt


class FacebookEngagements(BaseModel):
    like: NonNegativeInt
    love: NonNegativeInt
    care: NonNegativeInt
    haha: NonNegativeInt
    wow: NonNegativeInt
    sad: NonNegativeInt
    angry: NonNegativeInt
    comment: NonNegativeInt
    share: NonNegativeInt


class ContentItem(BaseModel):
    id: str
    post_id: Optional[str] = None
    parent_id: Optional[str] = None
    title: Optional[str] = None
    text: str
    author_name_hash: str
    type: Literal["post", "comment"]
    embedded_urls: Optional[list[HttpUrl]]
    created_at: datetime
    engagements: Union[TwitterEngagements, RedditEngagements, FacebookEngagements]


class Session(BaseModel):
    user_id: str
    user_name_hash: str
    cohort: str
    platform: Literal["twitter", "reddit", "facebook"]
    current_time: datetime


class SurveyResponse(BaseModel):
    party_id: Literal["democrat", "republican", "independent", "other", "no_preference"]
    party_write_in: Optional[str] = None
    support: Literal["strong", "not_strong"]
    party_lean: Literal["democrat", "republican"]
    sex: Literal["female", "male", "nonbinary", "prefer_not_to_say"]
    age: int = Field(ge=1, le=6)
    education: int = Field(ge=1, le=6)
    ideology: int = Field(ge=1, le=7)
    income: int = Field(ge=1, le=7)
    ethnicity: Literal[
        "native_american",
        "asian_or_pacific_islander",
        "black_or_african_american",
        "hispanic_or_latino",
        "white_or_caucasian",
        "multiple_or_other",
    ]
    ethnicity_write_in: Optional[str] = None
    socmed_use: int = Field(ge=1, le=7)
    browser_perc: float = Field(ge=0, le=1)
    mobile_perc: float = Field(ge=0, le=1)


class RankingRequest(BaseModel):
    session: Session
    survey: Optional[SurveyResponse] = None
    items: list[ContentItem]


class NewItem(BaseModel):
    id: str
    url: HttpUrl


class RankingResponse(BaseModel):
    ranked_ids: list[str]
    new_items: Optional[list[NewItem]] = None


app = FastAPI(
    title="Prosocial Ranking Challenge combined example",
    description="Ranks input based on how unpopular the things and people in it are.",
    version="0.1.0",
)
app.add_middleware(
    CORSMiddleware,
    allow_origins=["*"],
    allow_credentials=False,
    allow_methods=["HEAD", "OPTIONS", "GET", "POST"],
    allow_headers=["*"],
)

memoized_redis_client = None


def redis_client():
    global memoized_redis_client
    if memoized_redis_client is None:
        memoized_redis_client = redis.Redis.from_url(REDIS_DB)
    return memoized_redis_client


@app.post("/rank")
def rank(ranking_request: RankingRequest) -> RankingResponse:
    top_entities = set()
    cached_results = redis_client().get(RESULT_KEY)
    if cached_results is not None:
        try:
            record = json.loads(cached_results.decode("utf-8"))
            top_entities = set(x[0] for x in record["top_named_entities"])
        except (ValueError, KeyError, TypeError, IndexError):
            top_entities = set()

    ranked_results = []
    for item in ranking_request.items:
        score = -1 if any(ne in item.text for ne in top_entities) else 1
        ranked_results.append({"id": item.id, "score": score})
    ranked_results.sort(key=lambda x: x["score"], reverse=True)
    return RankingResponse(ranked_ids=[r["id"] for r in ranked_results])


@app.get("/health")
def health():
    return {"status": "ok"}
