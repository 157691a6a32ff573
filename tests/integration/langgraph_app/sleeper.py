"""A LangGraph graph for the real-server tests: one node that sleeps `sleep_s` seconds.

The node is async (`asyncio.sleep`): langgraph-api can interrupt it mid-sleep, which a
thread blocked in `time.sleep` would not allow.
"""

from __future__ import annotations

import asyncio
from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    sleep_s: float
    slept: float


async def sleep_node(state: State) -> State:
    seconds = float(state.get("sleep_s", 0) or 0)
    await asyncio.sleep(seconds)
    return {"slept": seconds}


builder = StateGraph(State)
builder.add_node("sleep", sleep_node)
builder.add_edge(START, "sleep")
builder.add_edge("sleep", END)
graph = builder.compile()
