-- Marketing: the audience for one category in the latest scoring, best prospects first.
-- Members have not engaged with the category in their history window and are ranked
-- by their probability of engaging with it (score --segment-size / --min-propensity).
-- Set the category in `chosen` (e.g. 'electronics.audio'); NULL picks the category
-- with the largest audience.
-- Run: python -m jobs sql --file sql/marketing_audience.sql --format csv > audience.csv
-- columns: score_date, category, rank, user_id, propensity, current_top_category, migration_probability, model_version
WITH chosen AS (SELECT CAST(NULL AS STRING) AS category),
latest AS (SELECT max(score_date) AS score_date FROM marketing_segments),
target AS (
    SELECT coalesce((SELECT category FROM chosen),
                    (SELECT s.category FROM marketing_segments AS s JOIN latest USING (score_date)
                     GROUP BY s.category ORDER BY count(*) DESC, s.category LIMIT 1)) AS category
)
SELECT s.score_date,
       s.category,
       s.rank,
       s.user_id,
       round(s.propensity, 4) AS propensity,
       p.current_top_category,
       round(p.migration_probability, 4) AS migration_probability,
       s.model_version
FROM marketing_segments AS s
JOIN latest USING (score_date)
JOIN target USING (category)
LEFT JOIN user_interest_predictions AS p ON p.score_date = s.score_date AND p.user_id = s.user_id
ORDER BY s.rank
