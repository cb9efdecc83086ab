-- A former member's personal data is erased on membership.MemberErased: claims forgets
-- its copies (masked forms, birth date); cases keep the member id and the age at diagnosis.
ALTER TABLE claims.coverage
    ALTER COLUMN masked_name DROP NOT NULL,
    ALTER COLUMN masked_national_id DROP NOT NULL,
    ALTER COLUMN birth_date DROP NOT NULL;
