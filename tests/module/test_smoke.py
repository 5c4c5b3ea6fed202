def test_module_loads_and_answers(r):
    assert {m[b"name"] for m in r.execute_command("MODULE", "LIST")} == {b"spirt"}
    assert r.execute_command("AI.TENSORSET", "t", "FLOAT", 2, "VALUES", 1, 2) == b"OK"
