"""Seed data that looks like a real small company, the same on every run (fixed random seed).

Snov.io: three prospect lists, about 150 prospects (some without an email, some with custom
fields). Pipedrive: three users, two pipelines of five stages, person custom fields of several
types, and about 100 persons; 40 of them share an email with a Snov.io prospect but differ in
phone, job title or name spelling, so a transfer has real conflicts to resolve.
"""

from __future__ import annotations

import random

FIRST = (
    "Anna Ben Carla David Elena Felix Greta Hugo Iris Jonas Kara Liam Mona Nils Olga Paul Rosa "
    "Sven Tara Umar Vera Walt Xena Yusuf Zoe Aaron Bianca Cyril Dana Emil Fiona Gavin Hanna Ivan "
    "Julia Kevin Lena Marco Nora Oscar"
).split()
LAST = (
    "Schmidt Novak Rossi Dubois Jensen Kowalski Silva Murphy Berg Costa Lindqvist Horvat Weber "
    "Moreau Fischer Nagy Olsen Romano Varga Keller Brandt Ortega Petrov Quinn Sato"
).split()
COMPANIES = (
    "Acme Logistics|Brightpath Labs|Cobalt Health|Delta Freight|Evergreen Foods|Fjord Analytics|"
    "Granite Legal|Harbor Retail|Ionic Energy|Juniper Travel|Kestrel Robotics|Lumen Media"
).split("|")
TITLES = (
    "Head of Sales|Marketing Manager|CTO|Operations Lead|Founder|Procurement Manager|"
    "Account Executive|VP Growth|Office Manager|Product Owner"
).split("|")
COUNTRIES = (("Germany", "Berlin"), ("France", "Lyon"), ("Poland", "Warsaw"), ("Spain", "Madrid"))
LISTS = ("Conference leads 2026", "SaaS founders EU", "Re-engagement")
INDUSTRIES = ("Logistics", "Healthcare", "Software", "Retail")


def demo_people(count: int = 210, seed: int = 42) -> list[dict]:
    """People with stable, unique emails; the first 150 are Snov.io's, 110..209 Pipedrive's."""
    rng = random.Random(seed)
    people = []
    for i in range(count):
        first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
        company = COMPANIES[rng.randrange(len(COMPANIES))]
        domain = company.split()[0].lower() + ".example"
        country, city = COUNTRIES[rng.randrange(len(COUNTRIES))]
        people.append(
            {
                "first_name": first,
                "last_name": last,
                "email": f"{first.lower()}.{last.lower()}{i}@{domain}",
                "company": company,
                "position": TITLES[rng.randrange(len(TITLES))],
                "phone": f"+49 30 {rng.randrange(1000000, 9999999)}",
                "country": country,
                "locality": city,
                "industry": INDUSTRIES[rng.randrange(len(INDUSTRIES))],
                "employees": rng.choice([10, 25, 50, 120, 400]),
            }
        )
    return people


def snovio_prospects(people: list[dict]) -> list[dict]:
    """150 prospects over three lists; every 15th has no email; a third carry custom fields."""
    prospects = []
    for i, person in enumerate(people[:150]):
        prospect = dict(person, list=LISTS[i % 3])
        if i % 15 == 7:
            prospect["email"] = ""
        if i % 3 == 0:
            prospect["custom_fields"] = {
                "Industry": person["industry"],
                "Employees": str(person["employees"]),
            }
        prospects.append(prospect)
    return prospects


def pipedrive_persons(people: list[dict]) -> list[dict]:
    """100 persons: 110..149 share an email with a prospect but differ; 150..209 are new."""
    persons = []
    for i, person in enumerate(people[110:210], start=110):
        record = dict(person)
        if i < 150:
            record["phone"] = f"+33 4 {70000000 + i}"  # the CRM has a newer phone
            if i % 2:
                record["position"] = "Director of Sales"
            if i % 5 == 0:
                record["email"] = record["email"].upper()  # same person, other spelling
        record["owner"] = ("Sam Seller", "Pat Pipeline", "Robin Admin")[i % 3]
        persons.append(record)
    return persons


def seed_sandbox(sandbox, people: int = 210) -> None:
    everyone = demo_people(people)
    sandbox.snovio.seed_demo(snovio_prospects(everyone), LISTS)
    sandbox.pipedrive.seed_demo(pipedrive_persons(everyone))
